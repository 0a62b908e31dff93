"""`python -m dashboard [streamlit options]`: start the app.

dashboard/pages/ is the fixed home of the pages, which Streamlit would also treat as the
legacy (v1) pages directory on a server's first run, running a page without app.py's
navigation, sidebar and checks. st.navigation owns routing here, so that legacy mode is
switched off before the server starts.
"""

import sys
from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.web import cli

APP = Path(__file__).resolve().parent / "app.py"

PagesManager.uses_pages_directory = False
sys.exit(cli.main(args=["run", str(APP), *sys.argv[1:]], prog_name="streamlit"))
