"""One module per payment gateway, each implementing
:class:`payments.gateways.base.PaymentGateway`."""
