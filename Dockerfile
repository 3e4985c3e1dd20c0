FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
EXPOSE 8000
# Migrations first (one replica applies them under the advisory lock, the others
# wait): up to the first backfill gate, whose backfills go to the workers (--no-wait
# exits 0), then gunicorn serves the app on the expand schema. A later start applies
# the contract revisions once the workers have finished the backfills. wsgi.py
# builds the app with the Celery dispatcher (the broker is configured here).
CMD ["sh", "-c", "python run_migrations.py --batched --no-wait && exec gunicorn --bind 0.0.0.0:8000 --workers 3 'wsgi:create_app()'"]
