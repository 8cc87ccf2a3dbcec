"""The Streamlit control panel: watch rigs, steer runs, approve proposals, review fits, use the twin.

``app.py`` is the entry (``chiptwin panel``); ``pages/`` render; the modules beside them hold
the logic (store reads, audited writes, figures) so that it is testable without a browser.
The panel never touches hardware: it reads the store and writes requests a runner picks up.
"""
