"""agents: the policies (rules, trained SB3 agents, trees), their training, tuning and evaluation.

Every policy answers SB3's ``predict`` (``agents.policy.Policy``) and is judged on the same held-out
users as the tuned threshold baseline, with paired intervals (``agents.evaluation``).
"""
