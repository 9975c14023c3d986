"""Lead intake: leads from the API become contacts' new leads, once."""
