FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
EXPOSE 8000
# Migrations first (one replica applies them under the advisory lock, the others
# wait), then gunicorn serves the app.
CMD ["sh", "-c", "python run_migrations.py && exec gunicorn --bind 0.0.0.0:8000 --workers 3 'backend:create_app()'"]
