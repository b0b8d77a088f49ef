"""The demo brand `kinfolk dev` seeds (`seed.py`) and the demo's reference data (`members.py`,
`rewards.py`, `community.py`), which the simulator shares. Kept free of imports here: the data
modules are imported by worker processes that must start fast."""
