"""The planner's parts: candidates, the MILP's arrays, baselines, explanations, formats."""
