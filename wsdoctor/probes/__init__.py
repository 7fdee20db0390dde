"""Gatherers: stages that open instrumented connections and record facts with timestamps."""
