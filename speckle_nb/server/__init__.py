"""The Jupyter server extension: the browser-facing steps of a sign-in.

``app.SpeckleNB`` (configuration, enabled by ``jupyter-config/``), ``handlers`` (thin HTTP
layer and the route list), ``service`` (what each route does), ``flows`` (flows and results in
memory), ``pages`` (the HTML the browser sees), ``redirect`` (which redirect URL to register).
Nothing here is imported by ``import speckle_nb``.
"""
