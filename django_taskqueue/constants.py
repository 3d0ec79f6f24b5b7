"""Values the package defines once: limits of the task table and the defaults of a task."""

# Priority is a SmallIntegerField: lower numbers run first.
PRIORITY_MIN = -32768
PRIORITY_MAX = 32767
DEFAULT_PRIORITY = 16
DEFAULT_RETRY_MAX = 8
# retry_max and retry_count are PositiveIntegerFields.
RETRY_MAX_LIMIT = 2**31 - 1
DEFAULT_QUEUE = "default"
NAME_MAX_LENGTH = 255
SIGNATURE_MAX_LENGTH = 255
QUEUE_MAX_LENGTH = 100
# Objects and arrays nested in a task's arguments, the arguments object included:
# MariaDB's JSON_VALID() refuses deeper documents, so every database keeps its limit.
ARGUMENTS_MAX_DEPTH = 31
# Characters of error text stored on a task or a failure-log row: the end of a longer
# traceback is kept, where the exception is.
ERROR_MAX_LENGTH = 64 * 1024
# The longest Requeue(delay_seconds=...): about 100 years.
REQUEUE_MAX_DELAY = 100 * 365 * 24 * 3600

# The queue's task name for every task enqueued through Django's tasks framework.
FRAMEWORK_TASK = "django_taskqueue.framework"
# The name under which catch-all consumers register.
CATCH_ALL = "*"

# Where validation leaves a task's arguments and their JSON text (in the instance's
# __dict__), so the INSERT sends that text instead of encoding the arguments again.
ARGUMENTS_JSON = "_taskqueue_arguments_json"
