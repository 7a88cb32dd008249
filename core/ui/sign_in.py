"""Sign-in page: all a visitor who is not signed in sees, at every URL of the suite."""

from core.ui import auth

auth.sign_in_form()
