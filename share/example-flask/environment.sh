# Variables for the app; secrets belong in ~/environment.sh on the server.
# ${HOME} is the deploy account's home: the database outlives every version.
export DATABASE_URL="sqlite:///${HOME}/example-flask.sqlite3"
export GREETING="Hello"
