import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.shortcuts import render

from dmarket.common.admin import ReadOnlyAdmin

from .models import QUANTUM, LedgerEntry, Run, UsageRecord
from .services import InsufficientCredits, credits_adjust

User = get_user_model()


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    # Append-only: operators move credits with the "grant credits" action on users.
    list_display = ["id", "created_at", "user", "kind", "amount", "held", "balance_after",
                    "run", "machine", "memo"]
    list_filter = ["kind", "created_at"]
    search_fields = ["user__username", "memo", "key"]
    list_select_related = ["user", "run", "machine"]
    date_hierarchy = "created_at"


class GrantForm(forms.Form):
    amount = forms.DecimalField(max_digits=20, decimal_places=6,
                                help_text="Credits to add; negative to take back.")
    memo = forms.CharField(max_length=500, help_text="Why, for the ledger.")

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError("Give a non-zero amount.")
        return amount


@admin.action(description="Grant credits to the selected users")
def grant_credits(modeladmin, request, queryset):
    if "apply" in request.POST:
        form = GrantForm(request.POST)
        if form.is_valid():
            amount = form.cleaned_data["amount"].quantize(QUANTUM)
            for user in queryset:
                try:
                    credits_adjust(user, amount, form.cleaned_data["memo"], request.user,
                                   key=f"adjustment:{uuid.uuid4()}")
                except InsufficientCredits as e:
                    modeladmin.message_user(request, f"{user}: not changed, {e}.",
                                            messages.ERROR)
                    continue
                modeladmin.message_user(request, f"{user}: {amount:+} credits.")
            return None
    else:
        form = GrantForm(initial={"amount": Decimal("10")})
    return render(request, "admin/grant_credits.html", {
        "form": form, "users": queryset, "title": "Grant credits",
        "action": "grant_credits", "opts": modeladmin.model._meta,
        "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
    })


class MarketUserAdmin(UserAdmin):
    list_display = ["username", "email", "is_staff", "balance", "held", "earned", "spent",
                    "date_joined"]
    list_select_related = ["account"]
    actions = [grant_credits]

    @admin.display(ordering="account__balance")
    def balance(self, user):
        return user.account.balance

    @admin.display(ordering="account__held")
    def held(self, user):
        return user.account.held

    @admin.display(ordering="account__earned")
    def earned(self, user):
        return user.account.earned

    @admin.display(ordering="account__spent")
    def spent(self, user):
        return user.account.spent


admin.site.unregister(User)
admin.site.register(User, MarketUserAdmin)
admin.site.site_header = "dmarket operations"


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    # Metered usage, posted to the ledger per run x machine (credits.services.usage_post).
    list_display = ["id", "recorded_at", "run", "machine", "key", "core_ms", "gpu_ms",
                    "posted_key"]
    search_fields = ["key", "posted_key"]
    list_select_related = ["run", "machine"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    # What each job, of either kind, is billed under; changed only by the credit services.
    list_display = ["id", "created_at", "label", "user", "max_credits", "cost",
                    "price_per_core_hour", "price_per_gpu_hour", "premium_rate"]
    search_fields = ["label", "user__username"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
