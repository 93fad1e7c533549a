"""The code examples of the seed's docs (../shared/seed-docs), one module per example
group, each as written there with only the changes its module docstring notes. The docs
use names they never define (``http_cli``, ``datastore_cli``, ``should_proceed``): each
module defines small stand-ins above the example, so the example itself stays as written.
"""
