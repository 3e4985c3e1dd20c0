"""Who may call what, without Flask: the operations token's policy, customer
passwords checked in constant time, and customers' server-side sessions.

The web layer (backend.web.auth_tokens, backend.web.shop.auth) wires these into
requests; docs/security.md says what each protects and how it is tested.
"""
