"""Clients of the external systems steps and probes talk to, one module per system.

A step and a probe that reach the same system share its client here (probes never
import steps). A client knows how to find its server from a step or probe body and
the host, how to talk to it, and how to keep secrets out of its own errors; what to
change and how to undo it stays in the step.
"""
