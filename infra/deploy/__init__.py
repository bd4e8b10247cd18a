"""Running nextwatch on Kubernetes: the images (``Dockerfile``) and the manifests that
``nextwatch deploy render`` writes from the project's own lists and a deployment's config file.

See ``docs/deploy.md`` for what is built, what is tested offline here, and what is not.
"""
