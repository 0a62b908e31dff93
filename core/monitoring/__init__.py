"""Live monitoring: evaluation of the rules after every write and on the monitor's schedule,
the alert lifecycle, and notifications.
"""
