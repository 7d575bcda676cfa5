# Storage class by age, per retention prefix. Each transition is one that the
# cost model (shared/cost: Plan, checked by TestPlanIsBest against
# cost.Best at the published prices) says saves money over the prefix's whole
# life, after Nearline/Coldline minimum durations (early deletion when the
# bucket deletes the object at retention + slack), retrieval fees and the
# colder classes' read prices. TestLifecycleTransitions holds these to Plan.
# Serve reads every class through the same API; nothing else changes.
#
#   r30/    stays STANDARD (24 days of Nearline save less than its reads cost)
#   r90/    NEARLINE at 7 days
#   r365/   NEARLINE at 7 days
#   r1825/  NEARLINE at 7 days, COLDLINE at 365 days
locals {
  storage_transitions = {
    "r90-nearline"   = { prefix = "r90/", age = 7, class = "NEARLINE", from = ["STANDARD"] }
    "r365-nearline"  = { prefix = "r365/", age = 7, class = "NEARLINE", from = ["STANDARD"] }
    "r1825-nearline" = { prefix = "r1825/", age = 7, class = "NEARLINE", from = ["STANDARD"] }
    "r1825-coldline" = { prefix = "r1825/", age = 365, class = "COLDLINE", from = ["STANDARD", "NEARLINE"] }
  }
}
