"""The objectives of the test service (imported by the service and by the test that generates rules)."""

from surefoot import slo

AVAIL = slo.Ratio("api_availability", target=0.99, route="/work", description="/work answers without 5xx")
BOOKING = slo.Latency("booking_post", target=0.95, threshold=0.5, route="/bookings", method="POST")
FIRST_SMS = slo.EventPair("first_sms", target=0.95, deadline=5.0, description="first SMS within 5 s")
OBJECTIVES = [AVAIL, BOOKING, FIRST_SMS]
