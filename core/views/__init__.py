"""What the pages show, computed in core: the ward summary and huddle, the timeline figure, the
patient summary, exports.
"""
