"""pr-previews: pull-request preview deployments driven by Ansible."""
