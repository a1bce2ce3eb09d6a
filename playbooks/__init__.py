"""Playbooks: plan, approve, apply, verify (arrives with the playbook issue)."""
