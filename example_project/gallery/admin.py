from django.contrib import admin

from .models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["id", "original_name", "uploaded_at", "done_at", "colour"]
    readonly_fields = ["thumbnails", "done_at", "colour"]
    search_fields = ["original_name"]
