from django.urls import path

from alerts import views

urlpatterns = [
    path("calendar.ics", views.calendar_feed, name="calendar-feed"),
    path("calendar/", views.calendar_page, name="calendar"),
]
