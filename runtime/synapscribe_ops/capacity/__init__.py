"""The capacity planner (`synapscribe capacity`): KV cache, lecture limits, instances and cost
(`plan`), the cold-start storage comparison (`coldstart_cost`), the month's worst case
(`worstcase`), their prices (`capacity_prices.yaml`) and the command (`cli`)."""
