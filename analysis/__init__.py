"""Kernel binary -> knob catalog: critical spans, IV = f(V), probe offsets, safe spans."""
