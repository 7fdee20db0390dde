"""Pure rules: observations in, findings and one verdict out."""
