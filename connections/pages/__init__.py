"""The dashboard's connection pages (front doors: parse, call one service, render).

- `detail`: the connection page and its timeline (`timeline`).
- `actions`: the page's buttons (refresh, health check, links, test alert, disable / enable).
- `edit`: add and edit pages, and the discovery preview.
"""
