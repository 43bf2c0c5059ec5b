"""The composition root: builds the services from the settings and assembles them into the web app
(``app``), the server (``server``), the scheduler worker (``worker``) and the command line (``cli``).
It sits above the services and the portal; nothing below imports it."""
