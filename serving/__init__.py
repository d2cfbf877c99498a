"""frontline's serving side: the HTTP service and batch labelling of exports."""
