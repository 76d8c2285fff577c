"""Faces: enrolment from ID-card photos, live verification, the ID-card display
check, unexpected-face alerts, and the worker pool that runs them off the event
loop. Plain Python over numpy arrays; no web, media or storage imports here.
Importing the package loads nothing: the models load on first use, per process.
"""
