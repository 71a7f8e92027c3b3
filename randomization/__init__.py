"""Domain randomization: one term per kind of parameter, a config schema, a Gymnasium wrapper."""
