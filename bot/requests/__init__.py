"""The request record and its life (DESIGN §2.10): the core owns every write request from its
receipt to its report, whichever adapter it came from.

- `life`: `RequestLife.submit`, the life of one request: claim, start, run, report;
- `runner`: carrying out a plan's calls, read before write, audited and fenced;
- `leases`: this process's leases (`LeaseBook`, `HeldLease`) and the fencing check before every
  outside action;
- `loop`: `RequestLoop`, the one loop per process that renews leases and takes over (and
  reports) requests whose replica stopped;
- `takeover`: reading a stopped request's rooms back and the verdicts;
- `delivery`: the `Delivery` protocol adapters implement, and `Deliveries`, by adapter name;
- `plans`: a plan as its record keeps it;
- `recorder`: audit rows built from requests, and writes that report failure instead of raising.
"""
