"""Data coming in: nurse entry, bulk import, corrections with a reason, the site code map, the
HL7 v2 feed, FHIR files and sync, held messages, the sample cohort.
"""
