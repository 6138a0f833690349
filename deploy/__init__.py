"""Running the app as several replicas behind nginx: see deploy/replicas.py and deploy/nginx_config.py."""
