"""Found only when TASKQUEUE["AUTODISCOVER"] = "consumers_alt"."""

from django_taskqueue import consumer


@consumer("tests.alt")
def alt(args):
    return None
