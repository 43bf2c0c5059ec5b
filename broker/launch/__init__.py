"""Dataset-to-analysis launch: routing to the holding facility's services and the launch lifecycle."""
