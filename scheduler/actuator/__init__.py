"""The actuator: makes the EC2 fleet match a plan, make-before-break, with a journal."""
