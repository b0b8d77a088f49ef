"""Operations on messages and their deliveries: the attempt log, listing and filtering
messages, resending one message, recovering what failed for an endpoint, and the retention
that drops old payloads."""
