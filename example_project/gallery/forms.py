from django import forms

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class UploadForm(forms.Form):
    file = forms.FileField(label="Image")
    delay = forms.IntegerField(
        label="Start after (seconds)",
        min_value=0,
        max_value=120,
        initial=3,
        help_text="Passed to enqueue() as delay_seconds.",
    )

    def clean_file(self):
        file = self.cleaned_data["file"]
        if file.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("Files of up to 10 MB, please.")
        return file
