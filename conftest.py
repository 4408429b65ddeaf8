# The plugin is loaded through its pytest11 entry point (pip install -e .); registering it
# here as well would load it twice. This file only marks the checkout's root for pytest.
