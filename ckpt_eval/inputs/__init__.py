"""What the user gives: image folders, trainer layouts, prompt files, checkpoint names.

Plan-time code: nothing here imports torch, so that planning a run stays fast.
"""
