"""Payments through gateways (bKash, Nagad, SSLCommerz, Razorpay): payment links, verified
notifications, polling, reconciliation into the billing ledger."""
