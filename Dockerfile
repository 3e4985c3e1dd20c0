FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The processes run as an unprivileged user (uid 10001) that owns nothing in /app:
# code that is exploited can neither rewrite the app nor act as root in the container.
RUN groupadd --system --gid 10001 shop && useradd --system --uid 10001 --gid shop --no-create-home shop
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
USER 10001:10001
EXPOSE 8000
# Migrations first (one replica applies them under the advisory lock, the others
# wait): up to the first backfill gate, whose backfills go to the workers (--no-wait
# exits 0), then gunicorn serves the app on the expand schema. A later start applies
# the contract revisions once the workers have finished the backfills. wsgi.py
# builds the app with the Celery dispatcher (the broker is configured here).
CMD ["sh", "-c", "python run_migrations.py --batched --no-wait && exec gunicorn --bind 0.0.0.0:8000 --workers 3 'wsgi:create_app()'"]
