"""frontline's model and how it is made: schema, normaliser, data, model, training, evaluation, tracking."""
