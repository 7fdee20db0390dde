"""One module per command; `wsdoctor.cli` registers them."""
