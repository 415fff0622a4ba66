"""Spacing shared by the conversation's rows, so bubbles and file cards line up."""

SIDE_MARGIN = 16              # viewport edge to a bubble or card
GROUP_GAP, INNER_GAP = 10, 2  # above the first row of a group / between rows of one group
