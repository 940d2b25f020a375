"""A form outside the admin, protected by CsrfViewMiddleware as every POST is
(https://docs.djangoproject.com/en/5.2/howto/csrf/), that answers with the messages framework
(https://docs.djangoproject.com/en/5.2/ref/contrib/messages/) after a redirect."""

from django.contrib import messages
from django.shortcuts import redirect, render


def feedback(request):
    if request.method == "POST":
        text = request.POST.get("text", "")
        request.session["feedback"] = request.session.get("feedback", 0) + 1
        messages.success(request, f"Thanks for your feedback: {text}")
        return redirect("feedback")
    return render(request, "shop/feedback.html", {"count": request.session.get("feedback", 0)})
