"""Scheduling: business calendars, SLA deadlines and follow-up times."""
