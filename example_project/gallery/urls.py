from django.urls import path

from . import views

app_name = "gallery"
urlpatterns = [
    path("", views.index, name="index"),
    path("sample/", views.upload_sample, name="sample"),
    path("broken/", views.upload_broken, name="broken"),
    path("uploads/<int:pk>/again/", views.resize_again, name="again"),
    path("uploads/<int:pk>/fix/", views.fix_file, name="fix"),
    path("colours/", views.backfill_colours, name="colours"),
    path("status.json", views.status, name="status"),
]
