from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the example project's admin user, or reset its password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo", help="Default: %(default)r.")
        parser.add_argument("--password", default="demo", help="Default: %(default)r.")

    def handle(self, *, username, password, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        if options["verbosity"]:
            action = "created" if created else "reset"
            self.stdout.write(f"admin user {username!r} {action}")
