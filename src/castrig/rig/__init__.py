"""The rig: a profile turned into links and devices (and, for sim links, the digital twin)."""
