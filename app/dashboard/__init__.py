"""The Streamlit dashboard: ``main.py`` is the router and shared sidebar, ``views/`` describe the pages
(not ``pages/``: Streamlit would also list a folder of that name as pages of its own).

Everything here is user interface over :mod:`monitor` (reading runs, verdicts) and :mod:`trainer`
(planning, submitting and cancelling extend jobs). Modules that do not import Streamlit (``store``,
``tables``, ``charts``, ``compare_data``, ``settings``) hold the logic pages need, so tests and the
benchmark can use them without a browser.
"""
