"""The operator's web application (``castrig serve``): live runs, reports, a JSON API and
token-protected operator actions. It reads the store and writes commands to a run's control
channel; it never talks to a device (DESIGN §1)."""
