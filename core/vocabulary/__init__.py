"""What the app talks about: analytes and units (UCUM), bedside observation kinds and drugs, a
patient's course as the rules read it, and the screening sentence every alert carries.
"""
